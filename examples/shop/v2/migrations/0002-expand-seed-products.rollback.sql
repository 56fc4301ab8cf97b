DELETE FROM products WHERE id IN (1, 2, 3);
