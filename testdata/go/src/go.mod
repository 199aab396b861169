module adi.invalid/gotargets

go 1.19
