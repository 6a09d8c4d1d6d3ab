"""Speed and memory of bcc, every figure of the speed issue in one run (research use only).

Printed, on this machine, with the CPU count and load average:

1. **Cold start**: ``streamlit run app.py`` -> server healthy -> first probabilities and Grad-CAM
   in headless Chromium (Playwright, as ``tests/e2e/test_browser.py``): the time after the server is
   healthy is what a user waits for once the page is up (TensorFlow import and model load).
2. **Per image, warm**, for every image modality: ``predict_images`` (ONNX Runtime where the
   bundle ships ``model.onnx``) and predict + Grad-CAM for the predicted class, median and 90th
   percentile over ``--runs`` passes over the samples.
3. **DenseNet121 at 224 px** (the usual pretrained-trunk design), timed the same way, and the
   ratio of its predict + Grad-CAM to each bundle's.
4. **Region maps**: a 2,000 x 2,000 px H&E field at the model's scale through ``analyse_region``
   (warm), and a generated ``--slide-side`` px pyramidal whole slide through ``analyse_slide``:
   seconds and tissue tiles per second.
5. **Ray**: ``predict --engine ray`` over ``--ray-files`` region images with 1 and 2 workers,
   against the local engine, wall time including Ray's and each worker's start.
6. **Peak RSS** (VmHWM) of the server and of this process.

Nothing is asserted: the figures depend on the machine and its load.

Usage:
    python benchmarks/latency.py                        # everything (about 6 minutes)
    python benchmarks/latency.py --skip-browser --skip-ray --modalities histopathology
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tests.support.server import peak_rss_mib, percentile  # noqa: E402


def cold_start(sample: Path, timeout_s: float = 300.0) -> None:
    """Time ``streamlit run`` start -> server healthy -> first verdict and heatmap in Chromium."""
    from playwright.sync_api import expect, sync_playwright

    from tests.support.server import CHROMIUM, CHROMIUM_ARGS, PATCH_UPLOADER, running_app

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
                verdict = page.get_by_text("Result:").or_(page.get_by_text("Indeterminate")).first
                expect(verdict).to_be_visible(timeout=timeout_s * 1000)
                heatmap = page.locator('[data-testid="stImage"]').filter(has_text="Grad-CAM").locator("img").first
                expect(heatmap).to_be_visible(timeout=timeout_s * 1000)
                first_result = time.perf_counter() - start
            finally:
                browser.close()
        server_rss = peak_rss_mib(proc.pid)
    print("Cold start (streamlit run -> first result in the browser)")
    print(f"  server healthy after         {healthy:7.1f} s")
    print(f"  sample uploaded after        {uploaded:7.1f} s")
    print(f"  probabilities + Grad-CAM at  {first_result:7.1f} s  ({first_result - healthy:.1f} s after the server "
          "was healthy: TensorFlow import and model load included)")
    print(f"  server peak RSS              {server_rss:7.0f} MiB" if server_rss else "  server peak RSS: n/a")


def per_image(modality: str, runs: int, warmup: int) -> float:
    """Median and p90 of predict + Grad-CAM (and lesion map + marks) per sample image, warm; the predict + Grad-CAM median (ms)."""
    from bcc_model.models.bundle import load_bundle
    from bcc_model.datasets.folders import sample_images
    from bcc_model.explain.cams import Explainer
    from bcc_model.imaging.io import read_image
    from bcc_model.registry import get_modality
    from bcc_model.analysis.predictions import predict_images
    from bcc_model.imaging.preprocess import to_model_batch
    from bcc_model.explain.marks import lesion_marks
    from bcc_model.modalities.mammography.hygiene import breast_region
    from bcc_model.models.lesion_head import lesion_maps

    spec = get_modality(modality)
    bundle = load_bundle(spec)
    explainer = Explainer(bundle.model, bundle.labels, bundle.info["architecture"].get("cam_layer", spec.cam_layer))
    images = [read_image(path).pixels for path in sample_images(spec)]
    if not images:
        raise SystemExit(f"no sample images under {spec.sample_dir}")

    def one(pixels) -> tuple[float, float, float]:
        t0 = time.perf_counter()
        prediction = predict_images(bundle, [pixels])[0]
        t1 = time.perf_counter()
        batch = to_model_batch([pixels], bundle.spec)
        explainer.heatmaps(batch, prediction.label)
        t2 = time.perf_counter()
        if bundle.lesion_map is not None:  # the lesion map and its marks, as the Classify page draws them
            view = np.clip(batch[0, ..., 0], 0, 255).astype(np.uint8)
            region = breast_region(view) if "breast_crop" in bundle.spec.preprocessing else None
            lesion_marks(lesion_maps(bundle.lesion_map, batch)[0], region=region)
        return t1 - t0, t2 - t1, time.perf_counter() - t2

    for _ in range(warmup):
        for pixels in images:
            one(pixels)
    predict_ms, cam_ms, map_ms, total_ms = [], [], [], []
    for _ in range(runs):
        for pixels in images:
            p, c, m = one(pixels)
            predict_ms.append(1000 * p)
            cam_ms.append(1000 * c)
            map_ms.append(1000 * m)
            total_ms.append(1000 * (p + c))
    print(f"Per image, warm ({bundle.info['name']}, {len(images)} samples x {runs} runs after {warmup} warm-up)")
    _print_times(predict_ms, cam_ms, total_ms)
    if bundle.lesion_map is not None:
        both = [p + m for p, m in zip(predict_ms, map_ms)]
        print(f"  {'lesion map + marks':<20} median {statistics.median(map_ms):7.1f} ms   p90 {percentile(map_ms, 0.9):7.1f} ms")
        print(f"  {'predict + map':<20} median {statistics.median(both):7.1f} ms   p90 {percentile(both, 0.9):7.1f} ms")
    print(f"  this process peak RSS {peak_rss_mib():.0f} MiB")
    return statistics.median(total_ms)


def _print_times(predict_ms: list[float], cam_ms: list[float], total_ms: list[float]) -> None:
    for name, values in (("predict", predict_ms), ("Grad-CAM", cam_ms), ("predict + Grad-CAM", total_ms)):
        print(f"  {name:<20} median {statistics.median(values):7.1f} ms   p90 {percentile(values, 0.9):7.1f} ms")


def densenet121_reference(runs: int, warmup: int, side: int = 224) -> float:
    """Median predict + Grad-CAM of one H&E sample patch through DenseNet121 at ``side`` px (ms)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from bcc_model.datasets.folders import sample_images
    from bcc_model.explain.cams import Explainer
    from bcc_model.imaging.io import read_image
    from bcc_model.registry import get_modality

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


def region_benchmark(side: int = 2000) -> tuple[float, int]:
    """Seconds and tissue tiles of ``analyse_region`` (warm) on a ``side`` px field of sample patches."""
    from bcc_model.analysis.region import analyse_region
    from bcc_model.registry import get_modality
    from bcc_model.models.bundle import load_bundle

    bundle = load_bundle(get_modality("histopathology"))
    field = _field_of_patches(side)
    analyse_region(bundle, field[:400, :400], bundle.spec.model_mpp)  # warm-up: graph and session built
    start = time.perf_counter()
    result = analyse_region(bundle, field, bundle.spec.model_mpp)
    seconds = time.perf_counter() - start
    print(f"Region map, {side:,} x {side:,} px at the model's scale: {seconds:.2f} s, {result.n_tiles:,} tissue tiles, "
          f"{result.n_tiles / seconds:,.0f} tiles/s (slide context {result.context.describe()})")
    return seconds, result.n_tiles


def _field_of_patches(side: int):
    """A ``side`` px H&E field tiled with the sample patches, a few glass tiles among them."""
    import numpy as np

    from bcc_model.datasets.folders import sample_images
    from bcc_model.imaging.io import read_image
    from bcc_model.registry import get_modality

    patches = [read_image(p).pixels for p in sample_images(get_modality("histopathology"))]
    cells = side // 50
    rows = []
    for r in range(cells):
        row = [np.full((50, 50, 3), 242, np.uint8) if (r * 7 + c * 3) % 11 == 0 else patches[(r * 31 + c * 17) % len(patches)]
               for c in range(cells)]
        rows.append(np.concatenate(row, axis=1))
    return np.ascontiguousarray(np.concatenate(rows, axis=0))


def slide_benchmark(side: int) -> float:
    """Tissue tiles per second of ``analyse_slide`` (warm) on a generated pyramidal slide of ``side`` px."""
    import tempfile

    from bcc_model.analysis.wsi import analyse_slide
    from bcc_model.imaging.wsi import open_slide
    from bcc_model.registry import get_modality
    from bcc_model.models.bundle import load_bundle
    from benchmarks.slides import _write_slide

    bundle = load_bundle(get_modality("histopathology"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "slide.tiff"
        _write_slide(path, side)
        slide = open_slide(path)
        try:
            start = time.perf_counter()
            result = analyse_slide(bundle, slide, batch_tiles=256)
            seconds = time.perf_counter() - start
        finally:
            slide.close()
    rate = len(result.boxes) / seconds
    print(f"Whole slide, generated {side:,} x {side:,} px pyramidal TIFF (1 µm/px): {seconds:.1f} s, "
          f"{len(result.boxes):,} tissue tiles, {rate:,.0f} tiles/s (tiles read, resized and classified)")
    return rate


def ray_benchmark(n_files: int, side: int = 1000) -> None:
    """Wall time of ``predict --region`` over ``n_files`` fields: local engine, Ray with 1 and 2 workers."""
    import subprocess
    import tempfile

    import cv2
    import numpy as np

    field = _field_of_patches(side)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "fields"
        folder.mkdir()
        for i in range(n_files):
            cv2.imwrite(str(folder / f"field_{i:02d}.png"), cv2.cvtColor(np.roll(field, 50 * i, axis=1), cv2.COLOR_RGB2BGR))
        print(f"Batch of {n_files} fields of {side:,} x {side:,} px, predict --region (wall time, process and "
              "worker starts included):")
        for label, extra in (("local engine", []), ("Ray, 1 worker", ["--engine", "ray", "--workers", "1"]),
                             ("Ray, 2 workers", ["--engine", "ray", "--workers", "2"])):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "bcc_model.predict", str(folder), "--region", "--mpp", "4",
                            "--out", str(Path(tmp) / label.replace(" ", "_").replace(",", "")), *extra],
                           capture_output=True, text=True, cwd=ROOT, check=True)
            seconds = time.perf_counter() - start
            print(f"  {label:<16} {seconds:6.1f} s  ({n_files / seconds:.2f} fields/s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="timed passes over the samples (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed passes first (default 3)")
    parser.add_argument("--modalities", nargs="+", default=["histopathology", "mammography", "ultrasound"],
                        help="image modalities whose bundles and samples are timed (default: all three)")
    parser.add_argument("--slide-side", type=int, default=10_000, help="side of the generated slide (default 10,000 px)")
    parser.add_argument("--ray-files", type=int, default=8, help="fields in the Ray batch (default 8)")
    parser.add_argument("--skip-browser", action="store_true", help="no cold start in Chromium")
    parser.add_argument("--skip-ray", action="store_true", help="no Ray batch")
    parser.add_argument("--skip-maps", action="store_true", help="no region or whole-slide maps")
    args = parser.parse_args(argv)

    print(f"Machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f} (1 min); "
          f"weights: {os.environ.get('BCC_WEIGHTS_DIR', ROOT / 'weights')}")
    if not args.skip_browser:
        from bcc_model.datasets.folders import sample_images
        from bcc_model.registry import get_modality

        sample = next(iter(sample_images(get_modality("histopathology"))), None)
        if sample is None:
            raise SystemExit("no sample image to upload")
        cold_start(sample)
    bundled = {modality: per_image(modality, args.runs, args.warmup) for modality in args.modalities}
    reference = densenet121_reference(args.runs, args.warmup)
    for modality, median in bundled.items():
        ratio = reference / median
        relation = f"{ratio:.1f}x faster than" if ratio >= 1 else f"{1 / ratio:.1f}x slower than"
        print(f"{modality}: predict + Grad-CAM {median:.1f} ms, {relation} DenseNet121 at 224 px ({reference:.1f} ms)")
    if not args.skip_maps:
        region_benchmark()
        slide_benchmark(args.slide_side)
    if not args.skip_ray:
        ray_benchmark(args.ray_files)
    print(f"This process peak RSS {peak_rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
