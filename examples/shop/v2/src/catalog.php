<?php
// The shop's data: products in SQLite, in the shared var/ directory (linked into every
// release, so the database outlives releases). Its schema comes from migrations/, run by
// bin/migrate (yoyo-migrations) through cutover.web's migrate role.
declare(strict_types=1);

const SHOP_VERSION = 'v2';

function shop_db(): PDO
{
    $dir = dirname(__DIR__) . '/var';
    $db = new PDO('sqlite:' . $dir . '/shop.sqlite');
    $db->setAttribute(PDO::ATTR_ERRMODE, PDO::ERRMODE_EXCEPTION);
    $db->exec('PRAGMA busy_timeout = 5000');
    return $db;
}

function shop_products(): array
{
    return shop_db()->query('SELECT name, price_cents, stock FROM products ORDER BY id')->fetchAll(PDO::FETCH_ASSOC);
}

function shop_price(int $cents): string
{
    return sprintf('%d.%02d EUR', intdiv($cents, 100), $cents % 100);
}
