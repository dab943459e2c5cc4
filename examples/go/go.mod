module example.com/stacklstm

go 1.19
