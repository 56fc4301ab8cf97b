<?php

use Illuminate\Database\Migrations\Migration;
use Illuminate\Database\Schema\Blueprint;
use Illuminate\Support\Facades\Schema;

// v2's contract migration (database/migrations/contract/): drops what only v1 used, once
// every host runs v2; down() brings it back for a rollback to v1.
class DropLegacyVisitsTable extends Migration
{
    public function up()
    {
        Schema::drop('legacy_visits');
    }

    public function down()
    {
        Schema::create('legacy_visits', function (Blueprint $table) {
            $table->id();
        });
    }
}
