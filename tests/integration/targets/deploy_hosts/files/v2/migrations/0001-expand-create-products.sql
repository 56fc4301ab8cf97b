CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price_cents INTEGER NOT NULL);
INSERT INTO products (id, name, price_cents) VALUES (1, 'Teapot', 2400), (2, 'Cup', 650);
