<?php
// Stores an uploaded file in media/ (the shared uploads folder).
declare(strict_types=1);

if ($_SERVER['REQUEST_METHOD'] !== 'POST' || !isset($_FILES['file']) || $_FILES['file']['error'] !== UPLOAD_ERR_OK) {
    http_response_code(400);
    exit("Send a file as multipart field 'file'.\n");
}
$name = preg_replace('/[^A-Za-z0-9._-]/', '_', basename($_FILES['file']['name']));
if ($name === '' || $name[0] === '.') {
    http_response_code(400);
    exit("Bad file name.\n");
}
move_uploaded_file($_FILES['file']['tmp_name'], __DIR__ . '/media/' . $name);
http_response_code(201);
echo "stored media/$name\n";
