<?php
require __DIR__ . "/../lib/version.php";
echo "shop " . shop_version() . "\n";
