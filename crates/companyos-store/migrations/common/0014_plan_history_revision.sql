-- One counter that every write of a tenant's plan history (a new assignment) increments in the
-- same transaction (ADR 0011): a node may keep plan histories in memory and use them while the
-- counter it reads in its own transaction still has the value it read them at. Correctness
-- rests on the shared row, never on a node's memory.
CREATE TABLE plan_history_revision (
    id INTEGER PRIMARY KEY,
    revision BIGINT NOT NULL
);
INSERT INTO plan_history_revision (id, revision) VALUES (1, 0);
