<?php

use Illuminate\Support\Facades\Cache;
use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Route;
use Illuminate\Support\Facades\Schema;

// One line per fact the test checks: the release, the configuration (cached at the build),
// the rows of the migrated tables, the queue restart signal (written by `queue:restart`).
Route::get('/', function () {
    $notes = DB::table('notes')->orderBy('id')->get();
    return response(implode("\n", [
        'laravel release ' . config('app.release'),
        'config cached: ' . (app()->configurationIsCached() ? 'yes' : 'no'),
        'greeting: ' . config('app.greeting'),
        'notes: ' . $notes->pluck('body')->implode(', '),
        'tags: ' . (Schema::hasTable('tags') ? DB::table('tags')->pluck('name')->implode(', ') : 'no table'),
        'legacy table: ' . (Schema::hasTable('legacy_visits') ? 'yes' : 'no'),
        'queue restart: ' . (Cache::get('illuminate:queue:restart') ?? 'never'),
    ]) . "\n", 200, ['Content-Type' => 'text/plain']);
});
