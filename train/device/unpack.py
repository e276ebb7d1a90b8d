"""A colour-only pair set -> the full pair set (gray rebuilt from the colour exactly as build-dataset makes it)."""
import io, sys
import datasets
from PIL import Image

src, dst = sys.argv[1], sys.argv[2]
d = datasets.load_from_disk(src)

def add_gray(batch):
    return {"gray": [Image.open(io.BytesIO(c["bytes"])).convert("L") for c in batch["color"]]}

out = datasets.DatasetDict({k: v.map(add_gray, batched=True, num_proc=8, features=datasets.Features({**v.features, "gray": datasets.Image()}))
                            for k, v in d.items()})
out.save_to_disk(dst)
print(dst, {k: len(v) for k, v in out.items()})
