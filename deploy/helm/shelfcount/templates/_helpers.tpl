{{/* Names and labels shared by every manifest. */}}
{{- define "shelfcount.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "shelfcount.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "shelfcount.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "shelfcount.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{- define "shelfcount.tritonUrl" -}}
{{- if .Values.gateway.tritonUrls -}}
{{- .Values.gateway.tritonUrls -}}
{{- else -}}
{{- printf "%s-triton:8001" (include "shelfcount.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "shelfcount.claim" -}}
{{- if .claim.existingClaim -}}
{{- .claim.existingClaim -}}
{{- else -}}
{{- printf "%s-%s" (include "shelfcount.fullname" .root) .name -}}
{{- end -}}
{{- end -}}
