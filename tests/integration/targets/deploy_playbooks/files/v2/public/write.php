<?php
// Run by PHP-FPM as the web server user: writes into the release's own cache (var/cache, made
// writable per release), appends to a file the build made there as root, and writes into the
// shared uploads (public/media, made writable in shared/).
$n = preg_replace('/[^0-9a-z]/', '', $_GET['n'] ?? 'x');
$app = dirname(__DIR__);
$ok = file_put_contents("$app/var/cache/page-$n.txt", "cached $n\n") !== false
    && (is_dir("$app/var/cache/sub-$n") || mkdir("$app/var/cache/sub-$n"))
    && file_put_contents("$app/var/cache/sub-$n/deep.txt", "deep $n\n") !== false
    && file_put_contents("$app/var/cache/warm/compiled.php", "// touched by $n\n", FILE_APPEND) !== false
    && file_put_contents(__DIR__ . "/media/upload-$n.txt", "uploaded $n\n") !== false;
if (!$ok) {
    http_response_code(500);
    echo "could not write: " . (error_get_last()['message'] ?? '?') . "\n";
    exit;
}
echo "wrote $n in " . basename($app) . "\n";
