"""Run in a subprocess by test_hub.py: HF_ENDPOINT and HF_TOKEN are set before huggingface_hub loads."""

import json
import sys

import torch

from colorgan_hf import ColorGenerator
from colorgan_hf.push import push_model

run_dir, evaluation_json = sys.argv[1], sys.argv[2]
local = ColorGenerator.from_pretrained(f"{run_dir}/generator").eval()
url = push_model(run_dir, "tester/colorgan-tiny", evaluations=[json.loads(open(evaluation_json).read())])
local.push_to_hub("tester/colorgan-mixin")
remote = ColorGenerator.from_pretrained("tester/colorgan-tiny").eval()
remote_mixin = ColorGenerator.from_pretrained("tester/colorgan-mixin").eval()
x = torch.rand(1, 1, 32, 32)
print(json.dumps({
    "commit_url": url,
    "same_outputs": bool(torch.equal(local(x), remote(x))),
    "same_outputs_mixin": bool(torch.equal(local(x), remote_mixin(x))),
    "architecture": remote.architecture,
}))
