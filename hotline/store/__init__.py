"""PostgreSQL storage: migrations, repositories, the call-to-ticket view, the outbox."""
