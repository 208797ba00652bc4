mod props;
mod state_size;
