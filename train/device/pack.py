"""Pack a pair set for the device: colour JPEG only (gray is rebuilt there from it)."""
import io, sys, datasets
from PIL import Image
src, dst, size, quality, max_train, max_test = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
d = datasets.load_from_disk(src)
def shrink(batch):
    out = []
    for c in batch["color"]:
        if size == 0:
            out.append(c); continue
        im = Image.open(io.BytesIO(c["bytes"])).convert("RGB")
        s = size / min(im.size)
        im = im.resize((max(size, round(im.width*s)), max(size, round(im.height*s))), Image.Resampling.BICUBIC, reducing_gap=3.0)
        b = io.BytesIO(); im.save(b, format="JPEG", quality=quality); out.append({"bytes": b.getvalue(), "path": None})
    return {"color": out}
parts = {}
for split, cap in (("train", max_train), ("test", max_test)):
    p = d[split].cast_column("color", datasets.Image(decode=False)).remove_columns("gray")
    p = p.select(range(min(cap, len(p))))
    parts[split] = p.map(shrink, batched=True, num_proc=2)
datasets.DatasetDict(parts).save_to_disk(dst)
