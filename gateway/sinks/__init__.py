"""Where confirmed counts go: Google Sheets, the Tryton ERP, a drop folder, an alert webhook.

Every destination is a :class:`~gateway.sinks.base.Sink`; the outbox worker
(:mod:`gateway.sinks.worker`) feeds each configured sink (:mod:`gateway.sinks.registry`) every
confirmed bay exactly once, retrying with backoff while a destination is away.
"""
