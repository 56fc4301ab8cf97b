<?php
declare(strict_types=1);
require __DIR__ . '/../src/catalog.php';

$uploads = array_values(array_filter(scandir(__DIR__ . '/media') ?: [], fn ($f) => $f[0] !== '.'));
header('X-Shop-Version: ' . SHOP_VERSION);
?><!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>cutover.web example shop</title>
<link rel="stylesheet" href="/assets/shop.css"></head>
<body>
<h1>The example shop, now with prices in bold</h1>
<p class="version">version 2 (<?= SHOP_VERSION ?>), served from <?= htmlspecialchars(basename(dirname(__DIR__))) ?></p>
<ul class="products">
<?php foreach (shop_products() as $p): ?>
  <li><?= htmlspecialchars($p['name']) ?>: <strong><?= shop_price((int) $p['price_cents']) ?></strong> (<?= (int) $p['stock'] ?> in stock)</li>
<?php endforeach; ?>
</ul>
<h2>Uploads (kept across releases)</h2>
<ul class="uploads">
<?php foreach ($uploads as $f): ?>
  <li><a href="/media/<?= rawurlencode($f) ?>"><?= htmlspecialchars($f) ?></a></li>
<?php endforeach; ?>
</ul>
<form method="post" action="/upload.php" enctype="multipart/form-data">
  <input type="file" name="file"> <button>Upload</button>
</form>
</body>
</html>
