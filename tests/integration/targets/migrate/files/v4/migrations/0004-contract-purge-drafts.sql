-- Irreversible (no .rollback.sql): the deleted rows cannot be brought back.
DELETE FROM products WHERE name LIKE 'Draft%';
