"""Models that travel: the shipped model, folders written by `lmlib export`, Hugging Face Hub ids.

    locate   a name, a folder or a Hub id -> the local folder holding the model
    export   a finished run -> a shareable folder (Hugging Face layout, fp32/fp16/bf16 weights)
    card     the model card (README.md with YAML front matter) of a run or an exported folder
    serving  how loaded weights compute on this machine: fp32, bf16 or int8 (dynamic quantisation)
    austen/  the model shipped inside the package (`--model austen`), as `lmlib export` wrote it

Load any of them with `Generator.from_pretrained(name_or_path)` (lmlib.generate).
"""
