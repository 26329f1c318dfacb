"""Constitutional training: from the constitution file to a tuned GGUF that `charter serve` runs.

    charter train sl-data   draft -> critique -> revision data (TRL "messages" JSONL)
    charter train prefs     AI-feedback preference pairs with soft labels (+ human feedback)
    charter train sft|dpo   LoRA fine-tuning with TRL on the transformers side
    charter train export    merge, write GGUF, quantise, model card

Needs the optional extra ``pip install 'charter[train]'``; importing this package imports
neither torch nor transformers. See docs/training.md.
"""
