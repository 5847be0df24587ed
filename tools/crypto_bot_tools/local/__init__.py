"""Run the deployed AWS stack locally: the SAM template's resources emulated in-process by moto.

Nothing here is imported by the domain core or by the Lambda handlers; it exists for the
integration tests and for ``crypto-bot local``. See :mod:`crypto_bot_tools.local.aws`.
"""
