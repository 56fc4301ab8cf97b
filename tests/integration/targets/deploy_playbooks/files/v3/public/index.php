<?php
require __DIR__ . '/../lib/part.php';
echo "page v3 part " . part() . " dir " . basename(dirname(__DIR__)) . "\n";
