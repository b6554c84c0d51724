"""The bot: channels (Telegram, Viber, the playground), services, storage glue.

One process-wide setting is made here, before anything imports numpy: OpenBLAS runs on one
thread (unless the operator set OPENBLAS_NUM_THREADS). The bot's only sizeable numpy work is
one matrix-vector product per unsure question (the embedding's similarities with every KB
phrasing, about 0.4 ms on one core). With a thread per core, OpenBLAS's helper threads spin
after each product: measured 6-8 ms of CPU per product instead of 0.4, on the core the event
loop needs (issue #19). The similarities differ at most in the last bits; the eval's figures
are the same either way.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
