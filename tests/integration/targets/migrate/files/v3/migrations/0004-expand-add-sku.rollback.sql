DROP TABLE sku_aliases;
ALTER TABLE products DROP COLUMN sku;
