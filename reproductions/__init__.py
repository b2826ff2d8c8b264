"""Small-scale reproductions of published findings, run through the trainer's command line.

Each module is one experiment, run end to end by one command:

    python -m reproductions.degradation      # He et al. 2016, Fig. 6: plain vs residual depth
    python -m reproductions.wrn_dropout      # Zagoruyko & Komodakis 2016, Table 6: dropout in WRN blocks
    python -m reproductions.transfer         # fine-tuning vs training from scratch, 100-1,000 labels per class
    python -m reproductions.precision        # mixed bfloat16 vs float32 training: accuracy and speed
    python -m reproductions.report           # rebuild docs/reproductions.md from the JSON results

Every training run is a separate ``python -m trainers.run`` process; the experiments read
only the files it writes (``metrics.json``, ``history.csv``, ``plan.json``). ``--quick``
runs a tiny version into a temporary directory (never the tracked ``docs/`` files).
"""
