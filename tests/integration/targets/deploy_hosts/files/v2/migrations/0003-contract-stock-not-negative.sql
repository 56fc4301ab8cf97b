-- Contract: a rule only version 2 is written for; it runs once every host serves version 2.
ALTER TABLE products ADD CONSTRAINT stock_not_negative CHECK (stock >= 0);
