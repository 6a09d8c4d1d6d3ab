"""Latency and memory of the bcc app, as a user would feel them (research use only).

Two figures matter to someone at the microscope:

1. **Cold start to first result**: from ``streamlit run app.py`` to the first probabilities and
   heatmap on screen, driven in headless Chromium through Playwright exactly like
   ``tests/test_browser.py`` (upload one sample, wait for the verdict and the Grad-CAM image).
   This includes importing TensorFlow and loading the model, which only the first user pays.
2. **Per-image latency** once warm: ``predict_images`` plus a Grad-CAM for the predicted class,
   per sample image, in this process, after warm-up runs (first calls trace TensorFlow graphs).
   Reported as median and 90th percentile over ``--runs`` passes.
3. **The same for a DenseNet121 at 224 px** (the usual pretrained-trunk design: the patch resized
   to 224 px, ``keras.applications.DenseNet121`` with a two-class head, Grad-CAM on its last
   feature map), timed the same way on the same machine, and the ratio of the two medians.

Peak resident memory (VmHWM) is printed for the server process and for this process. The
script prints figures and asserts nothing; numbers depend on the machine and its load, so the
CPU count and load average are printed with them.

Usage:
    python scripts/benchmark_latency.py               # both parts, 20 timed passes
    python scripts/benchmark_latency.py --runs 50 --skip-browser
    python scripts/benchmark_latency.py --skip-browser --modality ultrasound
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _peak_rss_mib(pid: int | str = "self") -> float | None:
    """Peak resident set size (VmHWM) of a live process in MiB, from /proc (Linux only)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def cold_start(sample: Path, timeout_s: float = 300.0) -> None:
    """Time ``streamlit run`` start -> server healthy -> first verdict and heatmap in Chromium."""
    from playwright.sync_api import expect, sync_playwright

    from scripts.streamlit_server import CHROMIUM, CHROMIUM_ARGS, PATCH_UPLOADER, running_app

    start = time.perf_counter()
    with running_app(timeout_s=timeout_s) as (url, proc):
        healthy = time.perf_counter() - start
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url)
                page.get_by_role("tab", name="Single patches").click()  # region mode is the first tab for H&E
                page.locator(PATCH_UPLOADER).first.set_input_files(str(sample))
                uploaded = time.perf_counter() - start
                verdict = page.get_by_text("Prediction:").or_(page.get_by_text("Indeterminate")).first
                expect(verdict).to_be_visible(timeout=timeout_s * 1000)
                heatmap = page.locator('[data-testid="stImage"]').filter(has_text="Grad-CAM").locator("img").first
                expect(heatmap).to_be_visible(timeout=timeout_s * 1000)
                first_result = time.perf_counter() - start
            finally:
                browser.close()
        server_rss = _peak_rss_mib(proc.pid)
    print("Cold start (streamlit run -> first result in the browser)")
    print(f"  server healthy after         {healthy:7.1f} s")
    print(f"  sample uploaded after        {uploaded:7.1f} s")
    print(f"  probabilities + Grad-CAM at  {first_result:7.1f} s  (includes TensorFlow import and model load)")
    print(f"  server peak RSS              {server_rss:7.0f} MiB" if server_rss else "  server peak RSS: n/a")


def per_image(modality: str, runs: int, warmup: int) -> float:
    """Median and p90 of predict + Grad-CAM per sample image of ``modality``, warm, in this process; the median (ms)."""
    from bcc_model.models.bundle import load_bundle
    from bcc_model.datasets.folders import sample_images
    from bcc_model.explain.cams import Explainer
    from bcc_model.imaging.io import read_image
    from bcc_model.modalities import get_modality
    from bcc_model.analysis.predictions import predict_images
    from bcc_model.imaging.preprocess import to_model_batch

    spec = get_modality(modality)
    bundle = load_bundle(spec)
    explainer = Explainer(bundle.model, bundle.labels, bundle.info["architecture"].get("cam_layer", spec.cam_layer))
    images = [read_image(path).pixels for path in sample_images(spec)]
    if not images:
        raise SystemExit(f"no sample images under {spec.sample_dir}")

    def one(pixels) -> tuple[float, float]:
        t0 = time.perf_counter()
        prediction = predict_images(bundle, [pixels])[0]
        t1 = time.perf_counter()
        explainer.heatmaps(to_model_batch([pixels], bundle.spec), prediction.label)
        return t1 - t0, time.perf_counter() - t1

    for _ in range(warmup):
        for pixels in images:
            one(pixels)
    predict_ms, cam_ms, total_ms = [], [], []
    for _ in range(runs):
        for pixels in images:
            p, c = one(pixels)
            predict_ms.append(1000 * p)
            cam_ms.append(1000 * c)
            total_ms.append(1000 * (p + c))
    print(f"Per image, warm ({bundle.info['name']}, {len(images)} samples x {runs} runs after {warmup} warm-up)")
    _print_times(predict_ms, cam_ms, total_ms)
    print(f"  this process peak RSS {_peak_rss_mib():.0f} MiB")
    return statistics.median(total_ms)


def _print_times(predict_ms: list[float], cam_ms: list[float], total_ms: list[float]) -> None:
    for name, values in (("predict", predict_ms), ("Grad-CAM", cam_ms), ("predict + Grad-CAM", total_ms)):
        print(f"  {name:<20} median {statistics.median(values):7.1f} ms   p90 {_percentile(values, 0.9):7.1f} ms")


def densenet121_reference(runs: int, warmup: int, side: int = 224) -> float:
    """Median predict + Grad-CAM of one H&E sample patch through DenseNet121 at ``side`` px (ms)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from bcc_model.datasets.folders import sample_images
    from bcc_model.explain.cams import Explainer
    from bcc_model.imaging.io import read_image
    from bcc_model.modalities import get_modality

    trunk = keras.applications.DenseNet121(include_top=False, weights=None, input_shape=(side, side, 3))
    head = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(trunk.output))
    model = keras.Model(trunk.input, head)
    explainer = Explainer(model, ("benign", "malignant"), trunk.layers[-1].name)
    patches = [read_image(path).pixels for path in sample_images(get_modality("histopathology"))]

    def one(pixels) -> tuple[float, float]:
        t0 = time.perf_counter()
        batch = keras.applications.densenet.preprocess_input(
            tf.image.resize(pixels[None].astype(np.float32), (side, side)).numpy())
        label = ("benign", "malignant")[int(np.argmax(model.predict_on_batch(batch)[0]))]
        t1 = time.perf_counter()
        explainer.heatmaps(batch, label)
        return t1 - t0, time.perf_counter() - t1

    for _ in range(warmup):
        one(patches[0])
    times = [one(patches[i % len(patches)]) for i in range(runs)]
    predict_ms, cam_ms = [1000 * p for p, _ in times], [1000 * c for _, c in times]
    total_ms = [p + c for p, c in zip(predict_ms, cam_ms)]
    print(f"Per image, warm (DenseNet121 at {side} px, random weights: same compute as pretrained; "
          f"{runs} runs after {warmup} warm-up)")
    _print_times(predict_ms, cam_ms, total_ms)
    return statistics.median(total_ms)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="timed passes over the samples (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed passes first (default 3)")
    parser.add_argument("--skip-browser", action="store_true", help="only the in-process per-image latency")
    parser.add_argument("--skip-reference", action="store_true", help="skip the DenseNet121 at 224 px comparison")
    parser.add_argument("--modality", default="histopathology",
                        help="image modality whose bundle and samples the per-image part uses (default histopathology)")
    args = parser.parse_args(argv)

    print(f"Machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f} (1 min); "
          f"weights: {os.environ.get('BCC_WEIGHTS_DIR', ROOT / 'weights')}")
    if not args.skip_browser:
        from bcc_model.datasets.folders import sample_images
        from bcc_model.modalities import get_modality

        sample = next(iter(sample_images(get_modality("histopathology"))), None)
        if sample is None:
            raise SystemExit("no sample image to upload")
        cold_start(sample)
    bundled = per_image(args.modality, args.runs, args.warmup)
    if args.modality == "histopathology" and not args.skip_reference:
        reference = densenet121_reference(args.runs, args.warmup)
        print(f"The bundled H&E model's predict + Grad-CAM is {reference / bundled:.1f}x faster than DenseNet121 at 224 px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
