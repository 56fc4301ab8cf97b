ALTER TABLE products DROP CONSTRAINT stock_not_negative;
