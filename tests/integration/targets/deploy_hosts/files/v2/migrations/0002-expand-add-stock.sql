-- Expand: a column with a default; version 1, which does not read it, keeps working.
ALTER TABLE products ADD COLUMN stock INTEGER NOT NULL DEFAULT 12;
