<?php

namespace App\Providers;

use Illuminate\Foundation\Support\Providers\RouteServiceProvider as ServiceProvider;
use Illuminate\Support\Facades\Route;

class RouteServiceProvider extends ServiceProvider
{
    public function boot()
    {
        // No session or cookie middleware: the pages below keep no state.
        $this->routes(function () {
            Route::group([], base_path('routes/web.php'));
        });
    }
}
