-- Broken on purpose: the first statement works, the second references a table that no release
-- creates, so the migration fails half-way and its transaction must leave nothing behind.
ALTER TABLE items ADD COLUMN owner_id bigint;

ALTER TABLE items
    ADD CONSTRAINT items_owner_fk FOREIGN KEY (owner_id) REFERENCES owners (id);
