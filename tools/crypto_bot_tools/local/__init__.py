"""Run the deployed AWS stack locally: the SAM template's resources emulated in-process by moto.

Nothing here is imported by the Lambda layer; it exists for the tests and for ``crypto-bot local``.

- the stack: :mod:`.template` (loading template.yaml), :mod:`.intrinsics` (Ref, Sub, GetAtt...),
  :mod:`.builder` (each resource under moto), :mod:`.lambdas` (the real handlers, in-process),
  :mod:`.stack` (``local_stack``, the whole of it);
- the server (``crypto-bot local``): :mod:`.server` wires :mod:`.settings`, :mod:`.account`,
  :mod:`.webhook` (API Gateway over :mod:`.api_gateway`), :mod:`.eventbridge` (the schedule and the pipe),
  :mod:`.executions`, :mod:`.state` and :mod:`.http`;
- :mod:`.cli` (``local`` and ``demo``), :mod:`.schedule`, :mod:`.render_asl` (the ASL with its substitutions).
"""
