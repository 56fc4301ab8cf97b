<?php

use Illuminate\Database\Migrations\Migration;
use Illuminate\Database\Schema\Blueprint;
use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Schema;

// v2's expand migration: a new table (v1 keeps working while it exists).
class CreateTagsTable extends Migration
{
    public function up()
    {
        Schema::create('tags', function (Blueprint $table) {
            $table->id();
            $table->string('name');
        });
        DB::table('tags')->insert(['name' => 'written by the v2 migration']);
    }

    public function down()
    {
        Schema::drop('tags');
    }
}
