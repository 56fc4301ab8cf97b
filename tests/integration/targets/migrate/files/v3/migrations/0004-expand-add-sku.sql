ALTER TABLE products ADD COLUMN sku TEXT;
-- A table of its own, which a restore must take away too.
CREATE TABLE sku_aliases (alias TEXT NOT NULL);
