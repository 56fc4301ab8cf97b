<?php

use Illuminate\Database\Migrations\Migration;
use Illuminate\Database\Schema\Blueprint;
use Illuminate\Support\Facades\Schema;

// expand: a table v1 has, and v2's contract migration drops once every host runs v2.
class CreateLegacyVisitsTable extends Migration
{
    public function up()
    {
        Schema::create('legacy_visits', function (Blueprint $table) {
            $table->id();
        });
    }

    public function down()
    {
        Schema::drop('legacy_visits');
    }
}
