-- The sends of the last second before a start (the sender's limiters carry them over a restart)
-- without scanning every message.
CREATE INDEX messages_sent_at ON messages (sent_at) WHERE sent_at IS NOT NULL;
