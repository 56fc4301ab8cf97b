<?php
require __DIR__ . '/../lib/part.php';
echo "page v1 part " . part() . " dir " . basename(dirname(__DIR__)) . "\n";
