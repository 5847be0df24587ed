"""Chat adapters: the trader's notifications posted to Telegram and Discord, beside the SNS e-mail."""
