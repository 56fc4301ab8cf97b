-- Expand: a new column with a default, so version 1 (which does not know it) keeps working.
ALTER TABLE products ADD COLUMN stock INTEGER NOT NULL DEFAULT 12;
