<?php

return [
    // A real app has a worker (`artisan queue:work`) on a database or redis queue; it restarts
    // when `artisan queue:restart` (the after_switch hook) writes its signal to the cache.
    'default' => env('QUEUE_CONNECTION', 'sync'),
    'connections' => [
        'sync' => ['driver' => 'sync'],
    ],
    'failed' => ['driver' => 'null'],
];
