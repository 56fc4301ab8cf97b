<?php

use Illuminate\Database\Migrations\Migration;
use Illuminate\Database\Schema\Blueprint;
use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Schema;

// expand (database/migrations/): a new table the release before never read.
class CreateNotesTable extends Migration
{
    public function up()
    {
        Schema::create('notes', function (Blueprint $table) {
            $table->id();
            $table->string('body');
        });
        DB::table('notes')->insert(['body' => 'written by the v1 migration']);
    }

    public function down()
    {
        Schema::drop('notes');
    }
}
