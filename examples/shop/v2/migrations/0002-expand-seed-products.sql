-- The first products.
INSERT INTO products (id, name, price_cents) VALUES
    (1, 'Espresso cup', 1200), (2, 'Milk jug', 1850), (3, 'Coffee grinder', 8900);
