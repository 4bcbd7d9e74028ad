-- The inbox at 50,000 conversations (bench/web.py).
--
-- Each view of the list is read in order from an index instead of sorting every open
-- conversation. The expression matches inbox.store.list_conversations' ORDER BY exactly (SQLite
-- uses an expression index only for the same expression).
CREATE INDEX conversations_inbox ON conversations (status, COALESCE(last_message_at, ''), id);
CREATE INDEX conversations_inbox_assignee
    ON conversations (status, assignee_id, COALESCE(last_message_at, ''), id);

-- The views' counts (open, mine, unassigned, closed; unread in each), kept by triggers so that
-- every page reads a few rows instead of counting 50,000. assignee_id 0 = unassigned (user ids
-- start at 1; a primary key column cannot be NULL). Foreign-key actions (a contact erased, a
-- user deleted) fire the triggers too.
CREATE TABLE conversation_counts (
    status TEXT NOT NULL,
    assignee_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    conversations INTEGER NOT NULL,
    unread INTEGER NOT NULL,
    PRIMARY KEY (status, assignee_id, channel_id)
) WITHOUT ROWID;

INSERT INTO conversation_counts (status, assignee_id, channel_id, conversations, unread)
SELECT status, COALESCE(assignee_id, 0), channel_id, count(*), COALESCE(sum(unread_count), 0)
FROM conversations GROUP BY status, COALESCE(assignee_id, 0), channel_id;

CREATE TRIGGER conversation_counts_insert AFTER INSERT ON conversations BEGIN
    INSERT INTO conversation_counts (status, assignee_id, channel_id, conversations, unread)
    VALUES (NEW.status, COALESCE(NEW.assignee_id, 0), NEW.channel_id, 1, NEW.unread_count)
    ON CONFLICT (status, assignee_id, channel_id)
    DO UPDATE SET conversations = conversations + 1, unread = unread + excluded.unread;
END;

CREATE TRIGGER conversation_counts_delete AFTER DELETE ON conversations BEGIN
    UPDATE conversation_counts SET conversations = conversations - 1, unread = unread - OLD.unread_count
    WHERE status = OLD.status AND assignee_id = COALESCE(OLD.assignee_id, 0) AND channel_id = OLD.channel_id;
END;

CREATE TRIGGER conversation_counts_update
AFTER UPDATE OF status, assignee_id, channel_id, unread_count ON conversations BEGIN
    UPDATE conversation_counts SET conversations = conversations - 1, unread = unread - OLD.unread_count
    WHERE status = OLD.status AND assignee_id = COALESCE(OLD.assignee_id, 0) AND channel_id = OLD.channel_id;
    INSERT INTO conversation_counts (status, assignee_id, channel_id, conversations, unread)
    VALUES (NEW.status, COALESCE(NEW.assignee_id, 0), NEW.channel_id, 1, NEW.unread_count)
    ON CONFLICT (status, assignee_id, channel_id)
    DO UPDATE SET conversations = conversations + 1, unread = unread + excluded.unread;
END;
