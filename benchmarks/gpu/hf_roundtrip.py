#!/usr/bin/env python3
"""The Hugging Face side of the round trip in scripts/gpu-check.sh: transformers and peft load what
`CudaFinetune export` wrote, and compute the mean next-token loss over a pretokenized .jsonl dataset
(input_ids, labels; -100 not counted), token-weighted, in float32 -- what `CudaFinetune eval` prints.

  python3 hf_roundtrip.py --model BASE --adapter PEFT_DIR --data data.jsonl   (base + PeftModel adapter)
  python3 hf_roundtrip.py --model MERGED --data data.jsonl                     (a merged export)

Prints "result hf_loss VALUE".
"""
import argparse
import json

import torch


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--adapter")
    parser.add_argument("--data", required=True)
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.float32)
    if args.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.adapter)
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for line in open(args.data, encoding="utf-8"):
            if not line.strip():
                continue
            record = json.loads(line)
            ids = torch.tensor([record["input_ids"]])
            labels = torch.tensor([record.get("labels", record["input_ids"])])
            logits = model(input_ids=ids).logits[0, :-1].float()
            targets = labels[0, 1:]
            counted = targets != -100
            if counted.any():
                loss = torch.nn.functional.cross_entropy(logits[counted], targets[counted], reduction="sum")
                total += loss.item()
                count += int(counted.sum())
    print(f"result hf_loss {total / count:.6f}")


if __name__ == "__main__":
    main()
