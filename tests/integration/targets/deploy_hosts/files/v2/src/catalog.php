<?php
// Version 2 reads the stock too; the connection settings are the shared config/db.ini.
declare(strict_types=1);

const CATALOG_VERSION = 'v2';

function catalog_products(): array
{
    $ini = parse_ini_file(dirname(__DIR__) . '/config/db.ini');
    $db = new PDO($ini['dsn'], $ini['user'], $ini['password'], [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
    return $db->query('SELECT name, price_cents, stock FROM products ORDER BY id')->fetchAll(PDO::FETCH_ASSOC);
}
