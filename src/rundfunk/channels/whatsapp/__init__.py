"""The WhatsApp Business Platform (Cloud API) channel: ``channel.WhatsAppChannel``."""
