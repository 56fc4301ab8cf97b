<?php
// The catalogue as plain text: which release answered, on which host, and the products
// as this release's code reads them from the shared PostgreSQL database.
declare(strict_types=1);
require __DIR__ . '/../src/catalog.php';

header('Content-Type: text/plain; charset=utf-8');
try {
    $products = catalog_products();
} catch (Throwable $e) {
    http_response_code(500);
    echo 'database error: ', $e->getMessage(), "\n";
    exit;
}
echo 'catalog ', CATALOG_VERSION, ' on ', gethostname(), "\n";
foreach ($products as $p) {
    echo implode(' | ', $p), "\n";
}
