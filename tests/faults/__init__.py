"""The fault suite: faults injected into real cycles, run by the executed state machine.

Every case starts the emulated stack (template.yaml under moto, the real Amazon States
Language definition, the real Lambda handlers, the paper exchange kept in the table),
sends alerts, injects one fault (an exchange error through a patched ``PaperExchange``
method, or a Lambda step or store call that crashes once) and runs the cycle. Then one
helper, :func:`tests.faults.harness.check_invariants`, asserts what must hold whatever
happened:

* no duplicate orders: each client order id (one per intent attempt) reached the
  exchange at most once, and every exchange order belongs to an intent attempt;
* no lost signals: every distinct alert sent is stored;
* every signal ends in a terminal status with a reason;
* the ledger's amount of every asset equals the paper exchange's balance;
* every failed cycle, and every cycle that gave an order up, was notified over SNS.

The figures of the run (cases, faults survived, duplicates, lost signals) are written
to ``docs/reliability.md`` when the whole suite ran; see ``conftest.py``.
"""
