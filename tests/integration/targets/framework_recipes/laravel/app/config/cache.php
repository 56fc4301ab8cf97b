<?php

return [
    'default' => env('CACHE_DRIVER', 'file'),
    'stores' => [
        // storage/ is shared: every release (and every queue worker) sees the same cache,
        // so `queue:restart` run from the new release reaches workers started by the old one.
        'file' => ['driver' => 'file', 'path' => storage_path('framework/cache/data')],
    ],
    'prefix' => 'minimal_cache',
];
