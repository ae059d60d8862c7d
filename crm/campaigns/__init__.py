"""Campaigns: segments, the consent ledger, campaigns and their deliveries (e-mail, SMS, WhatsApp)."""
