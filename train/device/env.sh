# Source from the repo root on the device: wheels the image lacks, the repo on the path.
rm -rf /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site gpu/whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=2
# kornia imports kornia_rs (image file I/O, unused here) at import: a stub stands in for the 5 MB wheel.
mkdir -p /tmp/site/kornia_rs && echo 'def __getattr__(name): return None' > /tmp/site/kornia_rs/__init__.py
python3 -c "import colorgan_hf.training, colorgan_hf.cli" || echo "IMPORT FAILED"
