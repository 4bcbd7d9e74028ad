-- Per-contact message lookups (a contact's first words, erasure) without scanning every message.
CREATE INDEX messages_contact ON messages (contact_id, direction, id);
