// Rear camera: live stream, torch, full-resolution stills and small preview frames.
//
// facingMode is asked as a preference ("environment"), never {exact: ...}: devices without a
// facing mode (desktop webcams, the test's fake camera) must still work.

// The gateway counts previews at up to 960 px (PREVIEW_MAX_SIDE): larger only costs upload.
const PREVIEW_WIDTH = 960;
const PREVIEW_QUALITY = 0.6;
const PHOTO_QUALITY = 0.9;
const TAKE_PHOTO_TIMEOUT_MS = 2500;

export class Camera {
  constructor(video) {
    this.video = video;
    this.stream = null;
    this.track = null;
    this.torchOn = false;
    this.grab = document.createElement("canvas");
    this.photoModeTrack = null;
    this.photoModeBigger = false;
    this.starting = null;
    this.wanted = false;
  }

  // Callers race (the count screen and a label scan): they share one start.
  start() {
    this.wanted = true;
    if (this.stream) return Promise.resolve();
    if (!this.starting) {
      this.starting = this.open().finally(() => {
        this.starting = null;
      });
    }
    return this.starting;
  }

  async open() {
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new Error("This browser has no camera access (an HTTPS address is needed).");
    }
    // Ask for a large picture: the still is taken from this stream where ImageCapture is
    // missing, so its resolution is the photo's resolution.
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: false,
      video: { facingMode: "environment", width: { ideal: 3840 }, height: { ideal: 2160 } },
    });
    if (!this.wanted) {
      // stop() was called while the camera was opening
      this.stop();
      return;
    }
    this.track = this.stream.getVideoTracks()[0];
    this.video.srcObject = this.stream;
    this.video.muted = true;
    this.video.setAttribute("playsinline", "");
    await this.video.play().catch(() => {});
    if (!this.video.videoWidth) {
      await new Promise((r) => this.video.addEventListener("loadedmetadata", r, { once: true }));
    }
  }

  // Resolves once the video has a picture to grab (at most `ms` later).
  async ready(ms = 5000) {
    await this.start();
    for (let waited = 0; !this.video.videoWidth && waited < ms; waited += 100) {
      await new Promise((r) => setTimeout(r, 100));
    }
    return !!this.video.videoWidth;
  }

  stop() {
    this.wanted = false;
    if (this.stream) for (const t of this.stream.getTracks()) t.stop();
    this.stream = null;
    this.track = null;
    this.video.srcObject = null;
  }

  get running() {
    return !!this.track && this.track.readyState === "live";
  }

  hasTorch() {
    try {
      return !!this.track?.getCapabilities?.().torch;
    } catch {
      return false;
    }
  }

  async setTorch(on) {
    if (!this.hasTorch()) return false;
    await this.track.applyConstraints({ advanced: [{ torch: on }] });
    this.torchOn = on;
    return true;
  }

  frameToCanvas(maxWidth) {
    const v = this.video;
    const w = v.videoWidth;
    const h = v.videoHeight;
    if (!w || !h) return null;
    const scale = Math.min(1, maxWidth / w);
    const c = this.grab;
    c.width = Math.round(w * scale);
    c.height = Math.round(h * scale);
    c.getContext("2d").drawImage(v, 0, 0, c.width, c.height);
    return c;
  }

  static toJpeg(canvas, quality) {
    return new Promise((resolve, reject) => {
      canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("could not encode JPEG"))),
        "image/jpeg", quality);
    });
  }

  async previewFrame() {
    const c = this.frameToCanvas(PREVIEW_WIDTH);
    return c ? Camera.toJpeg(c, PREVIEW_QUALITY) : null;
  }

  // Full-resolution still: ImageCapture.takePhoto (the sensor's photo mode) where it gives a
  // bigger picture than the video stream, else the current video frame (faster: no camera
  // reconfiguration). The photo-mode answer is cached per track.
  async photoModeIsBigger() {
    if (typeof ImageCapture === "undefined") return false;
    if (this.photoModeTrack === this.track) return this.photoModeBigger;
    this.photoModeTrack = this.track;
    this.photoModeBigger = false;
    try {
      const caps = await new ImageCapture(this.track).getPhotoCapabilities();
      this.photoModeBigger = (caps.imageWidth?.max || 0) > this.video.videoWidth;
    } catch {
      // no photo mode: the video frame it is
    }
    return this.photoModeBigger;
  }

  async takePhoto() {
    if (!this.running) throw new Error("camera is not running");
    if (await this.photoModeIsBigger()) {
      try {
        const ic = new ImageCapture(this.track);
        const blob = await Promise.race([
          ic.takePhoto(),
          new Promise((_, rej) => setTimeout(() => rej(new Error("slow")), TAKE_PHOTO_TIMEOUT_MS)),
        ]);
        if (blob && blob.size && blob.type === "image/jpeg") return { blob, via: "ImageCapture" };
      } catch {
        // fall through to the video frame
      }
    }
    const c = this.frameToCanvas(100000);
    return { blob: await Camera.toJpeg(c, PHOTO_QUALITY), via: "video frame" };
  }
}
