"""Who calls the API: API keys, the tenant and scopes they carry, and the admin command."""
