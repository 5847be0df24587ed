"""The fault suite: faults injected into real cycles, run by the executed state machine.

Every case starts the emulated stack (template.yaml under moto, the real Amazon States
Language definition, the real Lambda handlers, the paper exchange kept in the table),
sends alerts, injects one fault (an exchange error through a patched ``PaperExchange``
method, or a Lambda step or store call that crashes once) and runs the cycle. Then one
helper, :func:`tests.faults.harness.check_invariants`, asserts what must hold whatever
happened:

* no duplicate orders, counted on the venue's side over its whole order history: no
  intent attempt (client order id) twice, no intent filled beyond its amount, no alert
  traded in two cycles; and every venue order belongs to an intent attempt;
* no lost signals: every distinct alert sent is stored;
* every signal ends in a terminal status with a reason;
* the ledger's amount of every asset equals the paper exchange's balance;
* every failed cycle, and every cycle that gave an order up, was notified over SNS.

A fault is counted where it fires, and only when an error is really raised or a fill
really withheld; it survived when every invariant that concerns it held. The figures of
a whole run are written to the reliability report (``tests/faults/report.py``:
``.build/reports/reliability.md``, or ``docs/reliability.md`` under ``make reports``).
"""
